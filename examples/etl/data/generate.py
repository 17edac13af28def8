#!/usr/bin/env python3
"""Generates orders.csv, the ETL example's input: fictional orders with the
personal data of fictional customers, and a few rows that validation must
reject. Deterministic: `python3 generate.py > orders.csv` rewrites the same
file. Every name, address and email here is made up."""

import random
import sys

rng = random.Random(20261122)

FIRST = ["Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
         "Kaito", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tara",
         "Ugo", "Vera", "Wen", "Ximena", "Yusuf", "Zoe"]
LAST = ["Abbott", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
        "Jensen", "Kowalski", "Larsen", "Moreau", "Novak", "Okafor", "Petrov", "Quinn", "Rossi",
        "Schmidt", "Tanaka", "Urban", "Vasquez", "Weber", "Yilmaz", "Zielinski"]
PLACES = {
    "DE": [("Berlin", "10"), ("Hamburg", "20"), ("Munich", "80")],
    "FR": [("Paris", "75"), ("Lyon", "69"), ("Lille", "59")],
    "NL": [("Amsterdam", "10"), ("Utrecht", "35")],
    "ES": [("Madrid", "28"), ("Valencia", "46")],
    "SE": [("Stockholm", "11"), ("Malmo", "21")],
}
CURRENCY = {"DE": "EUR", "FR": "EUR", "NL": "EUR", "ES": "EUR", "SE": "SEK"}
STREETS = ["Linden", "Harbour", "Mill", "Station", "Garden", "Church", "Market", "River"]
SKUS = {"TEA-001": 4.50, "TEA-007": 7.90, "MUG-010": 12.00, "KET-100": 39.00,
        "POT-020": 24.50, "FIL-005": 3.20, "SET-300": 89.00}

customers = []
for n in range(1, 801):
    first, last = rng.choice(FIRST), rng.choice(LAST)
    country = rng.choice(list(PLACES))
    city, prefix = rng.choice(PLACES[country])
    customers.append({
        "id": f"C{n:05d}",
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}{n}@example.{country.lower()}",
        "phone": f"+{rng.randint(30, 49)} {rng.randint(100, 999)} {rng.randint(100000, 999999)}",
        "street": f"{rng.randint(1, 120)} {rng.choice(STREETS)} Street",
        "postal": f"{prefix}{rng.randint(100, 999)}",
        "city": city,
        "country": country,
        "birth": f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    })

print("order_id,order_date,customer_id,customer_name,email,phone,street,postal_code,city,"
      "country,birth_date,sku,quantity,unit_price,currency")
for n in range(1, 3001):
    c = rng.choice(customers)
    sku = rng.choice(list(SKUS))
    qty = rng.choice([1, 1, 1, 2, 2, 3, 4, 6])
    price = SKUS[sku] * (10.6 if c["country"] == "SE" else 1.0)
    date = f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}"
    currency = CURRENCY[c["country"]]
    # About one row in a hundred is broken the way real exports are.
    flaw = rng.random()
    if flaw < 0.003:
        qty = -qty
    elif flaw < 0.006:
        date = "2026-13-01"
    elif flaw < 0.008:
        currency = "XXX"
    elif flaw < 0.010:
        sku = ""
    print(f"O{n:06d},{date},{c['id']},{c['name']},{c['email']},{c['phone']},{c['street']},"
          f"{c['postal']},{c['city']},{c['country']},{c['birth']},{sku},{qty},{price:.2f},{currency}")
