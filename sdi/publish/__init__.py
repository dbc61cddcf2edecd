"""Publishing: ``layers/`` definitions → ``pygeoapi-config.yml``."""
