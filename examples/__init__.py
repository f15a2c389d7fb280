"""Examples of shmpipe modules and pipelines; see README.md in this folder."""
