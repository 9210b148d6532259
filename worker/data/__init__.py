"""MNIST data: the formats it comes in, validated, fetched, imported and split."""
