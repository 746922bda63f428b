"""Tasks used by the end-to-end tests; every run is recorded in the file $E2E_LOG."""
