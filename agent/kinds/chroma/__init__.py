"""Kind `chroma`: api (reaching it), capture (online copy or held), facts, place (restore), verify (checks, drill)."""
