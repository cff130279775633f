"""The example patients offered on the intake page (files shipped in ``legspasm/examples``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["EXAMPLES", "Example"]

_FOLDER = Path(__file__).resolve().parents[1] / "examples"


@dataclass(frozen=True, slots=True)
class Example:
    name: str
    title: str
    file: str

    @property
    def path(self) -> Path:
        return _FOLDER / self.file

    @property
    def fhir(self) -> bool:
        """A FHIR record (assessed as it is) rather than a case file (which fills the form)."""
        return self.file.endswith(".fhir.json")


EXAMPLES: dict[str, Example] = {
    e.name: e
    for e in (
        Example(
            "nocturnal-cramps",
            "71-year-old woman, night-time calf cramps, on Flexeril",
            "nocturnal-cramps.yaml",
        ),
        Example(
            "rls-low-ferritin",
            "78-year-old man, restless legs, ferritin 40, creatinine 247.5 µmol/L",
            "rls-low-ferritin.yaml",
        ),
        Example(
            "dvt-red-flag", "58-year-old woman, cramps with one swollen calf", "dvt-red-flag.yaml"
        ),
        Example(
            "stroke-spasticity",
            "56-year-old woman, generalised spasticity after a stroke",
            "stroke-spasticity.yaml",
        ),
        Example(
            "cirrhosis-cramps",
            "58-year-old man, cirrhosis with ascites, night cramps",
            "cirrhosis-cramps.yaml",
        ),
        Example(
            "rls-record",
            "FHIR record: restless legs on pramipexole (Bundle)",
            "rls-record.fhir.json",
        ),
    )
}
