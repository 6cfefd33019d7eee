"""Code that runs on the EC2 timeline hosts."""
