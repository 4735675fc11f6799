"""Write ``diabetes.csv``: synthetic patients shaped like the DP-100 labs' diabetes data (no real people).

Run ``python examples/dp100/data/generate.py`` to regenerate it; the seed makes the file identical each time.
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

COLUMNS = (
    "PatientID",
    "Pregnancies",
    "PlasmaGlucose",
    "DiastolicBloodPressure",
    "TricepsThickness",
    "SerumInsulin",
    "BMI",
    "DiabetesPedigree",
    "Age",
    "Diabetic",
)
ROWS = 1000


def main() -> None:
    rng = random.Random(6)
    with open(Path(__file__).with_name("diabetes.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for index in range(ROWS):
            age = rng.randint(21, 77)
            pregnancies = rng.randint(0, 12)
            glucose = rng.gauss(110, 25)
            bmi = rng.gauss(31, 8)
            pedigree = abs(rng.gauss(0.45, 0.3))
            score = 0.035 * (glucose - 110) + 0.08 * (bmi - 31) + 0.03 * (age - 40) + 1.2 * (pedigree - 0.45)
            diabetic = int(rng.random() < 1 / (1 + math.exp(-score)))
            writer.writerow(
                (
                    1000000 + index,
                    pregnancies,
                    round(glucose),
                    round(rng.gauss(72, 12)),
                    round(abs(rng.gauss(28, 10))),
                    round(abs(rng.gauss(130, 90))),
                    round(bmi, 2),
                    round(pedigree, 3),
                    age,
                    diabetic,
                )
            )


if __name__ == "__main__":
    main()
