"""Support for the SAM template, translator and `sam build` tests."""
