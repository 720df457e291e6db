"""Speech-to-text domain logic shared by the REST router, the CLI and live sessions."""
