"""A dirty occupancy feed in the public `SystemCodeNumber,Capacity,Occupancy,LastUpdated` format,
for timing the importer: PARKS car parks (every 50th reports only three days), 70 days, a
reading every ~30 minutes from 08:00 to 16:30 with jittered times, and the dirt of real feeds:
duplicated lines, occupancy below zero and above capacity, unreadable numbers, padded fields,
missing fields, no code, zero capacity, five time formats and about 3 % missing days.

    python3 scripts/bench/dirty_occupancy_csv.py PARKS [SEED] > feed.csv
"""
import random, sys, datetime as dt
random.seed(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
parks = int(sys.argv[1])
out = sys.stdout
out.write("SystemCodeNumber,Capacity,Occupancy,LastUpdated\n")
start = dt.datetime(2016, 10, 3)
fmts = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M"]
for p in range(parks):
    code = f"Park {p:04d}" if p % 50 else f"Rare {p}"
    cap = random.randint(100, 1500)
    days = 70 if p % 50 else 3
    for d in range(days):
        if random.random() < 0.03:
            continue
        day = start + dt.timedelta(days=d)
        for h in range(16, 34):
            t = day + dt.timedelta(minutes=h * 30 + random.randint(-20, 20), seconds=random.randint(0, 59))
            occ = int(cap * random.uniform(-0.05, 1.1))
            fmt = random.choice(fmts) if random.random() < 0.1 else fmts[0]
            line = f"{code},{cap},{occ},{t.strftime(fmt)}"
            r = random.random()
            if r < 0.01:
                line = f"{code},{cap},x{occ},{t.strftime(fmt)}"
            elif r < 0.015:
                line = f" {code} , {cap} ,{occ}, {t.strftime(fmt)} "
            elif r < 0.02:
                line = f"{code},{cap},{occ}"
            elif r < 0.025:
                line = f",{cap},{occ},{t.strftime(fmt)}"
            elif r < 0.03:
                line = f"{code},0,{occ},{t.strftime(fmt)}"
            out.write(line + "\n")
            if random.random() < 0.02:
                out.write(line + "\n")
