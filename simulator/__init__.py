"""A real HTTP AiAccount simulator following docs/aiaccount-api.md. It never imports the portal."""
