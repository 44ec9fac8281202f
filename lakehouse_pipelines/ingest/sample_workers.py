"""A deterministic, seeded generator of staffing data shaped like the Go lakehouse's workers_500k.

The rows exercise every hard case of ingest at once: zip codes with leading zeros, quoted comma lists,
resumes with embedded newlines and `""` quotes, empty dates, booleans, floats in 0-1. Roles come with their
own skills, certifications and resume vocabulary so semantic search has real structure to find.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path

COLUMNS = [
    "worker_id", "first_name", "last_name", "role", "city", "state", "zip", "phone", "email", "skills",
    "certifications", "years_experience", "hourly_rate", "reliability", "available", "shift", "last_placed",
    "resume_text",
]  # fmt: skip

# role -> (skills, certifications, resume phrases)
ROLES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "Forklift Operator": (
        ["forklift", "pallet jack", "reach truck", "inventory", "loading dock", "order picking"],
        ["OSHA-10", "OSHA-30", "Forklift Certification"],
        [
            "operated sit-down and reach forklifts",
            "moved pallets between racking and the loading dock",
            "kept a zero-incident forklift safety record",
        ],
    ),
    "Electrician": (
        ["industrial wiring", "conduit bending", "PLC troubleshooting", "motor controls", "blueprints"],
        ["Journeyman Electrician License", "OSHA-30", "NFPA 70E"],
        [
            "installed industrial wiring and conduit for production lines",
            "troubleshot motor control circuits and PLC panels",
            "read electrical blueprints and schematics",
        ],
    ),
    "Welder": (
        ["MIG welding", "TIG welding", "stick welding", "metal fabrication", "blueprint reading"],
        ["AWS D1.1", "OSHA-10"],
        [
            "welded structural steel with MIG and TIG processes",
            "fabricated metal frames from blueprints",
            "passed weld inspections on pressure fittings",
        ],
    ),
    "CNC Machinist": (
        ["CNC milling", "CNC lathe", "G-code", "precision measurement", "calipers", "setup"],
        ["NIMS Machining Level I", "OSHA-10"],
        [
            "set up and ran CNC mills and lathes",
            "wrote and edited G-code programs",
            "held tolerances with micrometers and calipers",
        ],
    ),
    "Assembly Technician": (
        ["mechanical assembly", "hand tools", "torque specs", "quality inspection", "lean manufacturing"],
        ["IPC-A-610", "OSHA-10"],
        [
            "assembled components on a fast-paced production line",
            "inspected parts against quality specs",
            "followed lean manufacturing and 5S practices",
        ],
    ),
    "Warehouse Associate": (
        ["order picking", "packing", "shipping and receiving", "RF scanner", "inventory counts"],
        ["OSHA-10"],
        [
            "picked and packed customer orders with an RF scanner",
            "received inbound freight and checked counts",
            "kept the warehouse aisles organized and safe",
        ],
    ),
    "Maintenance Mechanic": (
        ["preventive maintenance", "hydraulics", "pneumatics", "conveyor repair", "welding"],
        ["OSHA-30", "EPA 608"],
        [
            "performed preventive maintenance on packaging equipment",
            "repaired hydraulic and pneumatic systems",
            "kept conveyors running on night shift",
        ],
    ),
    "Quality Inspector": (
        ["quality inspection", "CMM", "SPC", "first article inspection", "ISO 9001"],
        ["ASQ CQI", "Six Sigma Green Belt"],
        [
            "inspected machined parts with CMM and gauges",
            "recorded SPC data and flagged drift",
            "ran first article inspections for new parts",
        ],
    ),
    "Machine Operator": (
        ["machine operation", "injection molding", "press operation", "quality checks", "changeovers"],
        ["OSHA-10", "Lockout/Tagout"],
        [
            "ran injection molding presses",
            "performed changeovers and quality checks",
            "followed lockout/tagout procedures",
        ],
    ),
    "Production Supervisor": (
        ["team leadership", "scheduling", "lean manufacturing", "safety training", "KPI reporting"],
        ["OSHA-30", "Six Sigma Green Belt"],
        [
            "led a team of 20 on the production floor",
            "scheduled shifts and tracked KPIs",
            "ran daily safety huddles",
        ],
    ),
}

CITIES = [
    ("Aurora", "IL", "60505"), ("Joliet", "IL", "60432"), ("Chicago", "IL", "60608"), ("Gary", "IN", "46402"),
    ("Fort Wayne", "IN", "46802"), ("Toledo", "OH", "43604"), ("Dayton", "OH", "45402"), ("Akron", "OH", "44308"),
    ("Flint", "MI", "48502"), ("Grand Rapids", "MI", "49503"), ("Milwaukee", "WI", "53204"),
    ("Green Bay", "WI", "54301"), ("Holtsville", "NY", "00501"), ("Springfield", "MA", "01103"),
    ("Worcester", "MA", "01608"), ("Hartford", "CT", "06103"), ("Newark", "NJ", "07102"),
    ("Paterson", "NJ", "07501"), ("Louisville", "KY", "40202"), ("Memphis", "TN", "38103"),
    ("Birmingham", "AL", "35203"), ("Greenville", "SC", "29601"), ("Houston", "TX", "77002"),
    ("Fort Worth", "TX", "76102"), ("Phoenix", "AZ", "85003"),
]  # fmt: skip
FIRST = ["James", "Maria", "Robert", "Linda", "Michael", "Ana", "David", "Keisha", "Jose", "Emily", "Wei",
         "Fatima", "Daniel", "Olga", "Luis", "Grace", "Tyrone", "Priya", "Kevin", "Rosa"]  # fmt: skip
LAST = ["Smith", "Garcia", "Johnson", "Nguyen", "Brown", "Martinez", "Davis", "Lopez", "Wilson", "Kowalski",
        "Patel", "Okafor", "Miller", "Hernandez", "Chen", "O'Brien", "Jackson", "Rossi", "Kim", "Novak"]  # fmt: skip
SHIFTS = ["day", "swing", "night", "weekend"]


def worker_rows(rows: int, seed: int = 7, first_id: int = 1) -> Iterator[list[str]]:
    """Yield `rows` rows of text cells; the same seed always gives the same rows."""
    rng = random.Random(seed)
    roles = list(ROLES)
    for worker_id in range(first_id, first_id + rows):
        role = rng.choice(roles)
        skills, certs, phrases = ROLES[role]
        city, state, zip_code = rng.choice(CITIES)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        years = rng.randint(0, 35)
        picked_phrases = rng.sample(phrases, k=2)
        resume = (
            f"{first} {last}, {role.lower()} with {years} years of experience in {city}, {state}.\n"
            f"- {picked_phrases[0]}\n- {picked_phrases[1]}\n"
            f'Supervisor said: "{rng.choice(["reliable", "fast learner", "safety-first", "team player"])}".'
        )
        last_placed = (
            ""
            if rng.random() < 0.15
            else f"20{rng.randint(18, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        )
        yield [
            str(worker_id), first, last, role, city, state, zip_code,
            f"({rng.randint(200, 989)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}",
            f"{first}.{last}{worker_id}@example.com".lower().replace("'", ""),
            ", ".join(rng.sample(skills, k=rng.randint(2, min(4, len(skills))))),
            ", ".join(rng.sample(certs, k=rng.randint(1, len(certs)))),
            str(years),
            f"{rng.uniform(15, 65):.2f}",
            f"{rng.betavariate(8, 2):.3f}",
            rng.choice(["true", "false"]),
            rng.choice(SHIFTS),
            last_placed,
            resume,
        ]  # fmt: skip


def write_workers_csv(path: Path, rows: int, seed: int = 7, first_id: int = 1) -> Path:
    """Write a workers CSV (RFC 4180, CRLF line ends as `csv` writes them) and return its path.

    `first_id` lets successive drops carry new workers rather than new versions of the same ones.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(worker_rows(rows, seed, first_id))
    return path
