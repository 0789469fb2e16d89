# file: quick_demo.py
from hms_bus import publish, subscribe

# 1) A service publishes an event
publish("payments.sent", {"user":"CIT-883", "amount": 1000})

# 2) A tiny monitoring script listens
def show(ev):
    print("🛰️  got event:", ev["topic"], ev["data"])

subscribe("payments.*", show)

# Keep the demo alive for 5 sec
import time; time.sleep(5)
