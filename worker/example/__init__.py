"""The example SaaS app: customers (tenants) with projects and reports."""
