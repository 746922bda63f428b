"""Testing helpers for taskq and its plugins (the conformance kit lives in ``conformance``)."""
