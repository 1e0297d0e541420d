"""pcls: Jitsi Meet on AWS, provisioned with boto3 as idempotent steps."""

__version__ = "0.1.0"
