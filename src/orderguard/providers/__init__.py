"""Payment providers behind one provider-neutral interface (:mod:`.base`)."""
