"""Settlement reconciliation: provider reports held against the orders (G3, G4).

``sources`` opens a report file (format, encoding, header), ``formats`` says how each
provider's columns map onto one settlement line, ``engine`` loads the lines and the orders
into DuckDB and matches them, ``report`` renders the outcome, ``apply`` records it and
flags orders, ``queries`` reads recorded exceptions for the console and metrics.
"""
