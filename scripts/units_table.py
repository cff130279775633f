"""Rebuild src/legspasm/units_table.json (the prebuilt unit factors) from pint and the knowledge
base: run after changing a lab's unit or molar mass (tests/test_units_and_derive.py says when)."""

from legspasm.units import main

if __name__ == "__main__":
    main()
