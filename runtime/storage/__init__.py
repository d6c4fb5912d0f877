"""Storage events: object stores (S3 notifications) and local directories (watchdog)
turned into CloudEvents 1.0 records on fabric topics."""
