"""Datasets: RaFD, CFEED and plain folders, the synthetic renderer, crop cache, splits."""
