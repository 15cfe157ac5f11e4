"""Documentation generators: sections and pages written from study JSON."""
