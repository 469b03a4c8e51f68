"""An example shop: one checkout page and its back end, against ``orderguard serve``."""
