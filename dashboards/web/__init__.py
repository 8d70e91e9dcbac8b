"""The pages: FastAPI routes, Jinja2 templates, server-side SVG charts."""
