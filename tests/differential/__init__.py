"""Differential testing: random sequences of ordinary file operations against smbsrv and Samba 4.17.

ops.py generates seeded sequences over a tiny namespace, run.py executes each against both servers and reports
the first step where their answers differ (minimised), allowed.py holds the differences that are deliberate.
"""
