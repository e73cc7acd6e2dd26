# tests/: integration tests of the foundation (unit tests are registered by
# the directory they test).
INTEGRATION_TESTS += tests/integration/quota_cli.py
EXTRA_DIST += tests/integration/quota_cli.py
EXTRA_DIST += tests/integration/postfix_instance.py tests/integration/testnet.py
