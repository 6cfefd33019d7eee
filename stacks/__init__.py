"""CDK stacks (which only compose) and their components (one construct per component)."""
