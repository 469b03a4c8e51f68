"""The pure core: orders, payments, money, shoppers and their state machines.

Nothing in this package performs I/O or imports anything outside the standard library.
"""
