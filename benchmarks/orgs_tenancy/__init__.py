"""The tenant model of the django-tenancy build: ``Org``."""
