"""loaderbench: measure input pipelines and training on any hardware."""
