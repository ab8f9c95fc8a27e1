import time, os
from edgegen.benchmarks.machine import matmul_rate
vals=[]
for i in range(30):
    time.sleep(1.0)
    r = matmul_rate(2, "cpu", sizes=(2048,), seconds=0.3, trials=3, warmup=1)
    vals.append(round(r.gflops))
print("idle-process yardstick (GFLOP/s), 30 probes:", sorted(vals), "spread", round(max(vals)/min(vals)-1,2), "load", os.getloadavg())
