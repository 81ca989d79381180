# The tiny_data fixture lives in tests/conftest.py (shared by every test folder).
