"""`make deploy`: the prod stage into a real account, checked first, one stack at a time (cli.py)."""
