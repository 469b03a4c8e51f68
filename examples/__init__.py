"""Examples of using orderguard from a shop (not part of the installed package)."""
