"""Thin Dagster assets and checks over the plain libraries in identity/, privacy/ and assets/landing|marts."""
