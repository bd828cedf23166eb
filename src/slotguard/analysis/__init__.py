"""Analyses that read a module's tree, computed once per module and asked
for by the rules (as LibCST's metadata providers are): what names hold
(``infer``), what a module tells the project (``summary``), how long
resources live (``lifetimes``), pools and their hooks (``pools``), slow work
(``slow_work``).

They ask the knowledge in ``slotguard.model``; nothing here imports the
control flow (``slotguard.flow``), the rules or the fixes.
"""
