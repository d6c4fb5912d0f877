"""Constants shared by credential tests."""

CLUSTER_UUID = "5f2c9a1e-1b2c-4d3e-8f90-a1b2c3d4e5f6-2"
CLUSTER_ARN = f"arn:aws:kafka:us-east-1:123456789012:cluster/octopus-test/{CLUSTER_UUID}"
OWNER_SUB = "b7c5a8e2-1d34-4f6a-9b0c-7e8f9a0b1c2d"
