"""The timeline read service each EC2 read host runs: HTTP over a disposable SQLite cache and DynamoDB."""
