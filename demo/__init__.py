"""The demo market of `make run`: `manage.py seed_demo` seeds it, `manage.py runstack` runs the whole product
with its simulated agents. Demo only: nothing in production depends on this app."""
