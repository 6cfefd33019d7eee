"""The write API's routes and which handler module (route group) serves each.

One table for the HTTP API the stacks declare and for the local runtime that stands in for it.
"""

ROUTES = {
    "POST /tweets": "tweets",
    "GET /tweets/{id}": "tweets",
    "DELETE /tweets/{id}": "tweets",
    "POST /tweets/{id}/retweet": "tweets",
    "POST /tweets/{id}/like": "tweets",
    "DELETE /tweets/{id}/like": "tweets",
    "POST /users/{handle}/follow": "users",
    "DELETE /users/{handle}/follow": "users",
    "POST /media/uploads": "media",
}

# The routes whose request carries a JSON body; every other route takes none.
BODY_ROUTES = frozenset({"POST /tweets", "POST /media/uploads"})
