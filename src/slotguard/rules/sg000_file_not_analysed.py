"""
## What it does
Reports a file that slotguard could not analyse, and why: it could not be
read, it is not valid text in its declared encoding (or UTF-8), it does not
parse, or it is nested too deeply to analyse safely. Also a directory that
could not be listed, and a function whose control flow has too many paths to
follow (its connections are not checked; the rest of the file is).

Files that mention no database library, dependency marker or configured
wrapper are not parsed at all (the prefilter), so a syntax error in one of
them is not reported here: that is the compiler's and your other linters' job.

## Why is this bad?
A file slotguard cannot read is a file nobody has checked for leaks. The
finding makes that visible instead of silently skipping the file; the other
files of the run are still analysed.

## Example
A Latin-1 file without a coding declaration:

```python
nom = "café"  # saved as Latin-1
```

## Use instead
Declare the encoding, or save the file as UTF-8:

```python
# -*- coding: latin-1 -*-
nom = "café"
```

## Notes
This finding is always reported, whatever `--select` or `--ignore` say;
exclude a file (`exclude`, `extend-exclude`) to stop checking it.

## Fix safety
There is no automatic fix.
"""

from __future__ import annotations

from slotguard.rules.base import Context, Rule


class FileNotAnalysed(Rule):
    code = "SG000"
    name = "file-not-analysed"
    summary = "The file could not be read or parsed, so it was not analysed."

    def check(self, context: Context) -> None:
        """Reported by the engine, which is where reading and parsing fail."""
