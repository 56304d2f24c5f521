"""Pictures: the drawing helpers and the figures the commands save."""
