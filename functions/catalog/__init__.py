"""The catalog: stores plugins and runs their registration (3.1 to 3.3)."""
