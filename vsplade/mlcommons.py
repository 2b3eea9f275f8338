from vsplade_opensearch.mlcommons import *  # noqa: F401,F403 - moved to the connector; shim until cli.py stops importing it
