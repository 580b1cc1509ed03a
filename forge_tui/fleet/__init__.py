"""Fleet fine-tuning on Flower (pinned `flwr`, its Deployment Engine): one SuperLink and a coordinator
(the ServerApp) on one machine, a SuperNode and the ClientApp on each device. What travels is LoRA
adapter tensors and numeric metrics, nothing else.

  settings.py      what a fleet run is asked to do (rounds, nodes, steps, timeouts, DP), checked
  wire.py          adapter tensors as they travel: read, hashed, sized, written back as a PEFT folder
  events.py        the fleet's events in the coordinator's run directory (rounds, updates, misses)
  coordinator.py   the ServerApp: FedAvg rounds, every update audited, every round's adapter kept
  node.py          one device's round: the same trainer from the global adapter, for N local steps
  client_app.py    the ClientApp around node.py (train and evaluate handlers)
  launch.py        the Flower processes (SuperLink, SuperNodes, run submission, node registration)
  certs.py         `fleet certs`: a CA, the SuperLink's certificate, the nodes' keys
  shards.py        a dataset split across nodes (iid or by category) for a local fleet
  local.py         `fleet local`: a whole fleet of real processes on loopback
  status.py        `fleet status`: nodes, their states, rounds, bytes

The fleet modules are engine-side: they never import textual; the console reads their events.
"""
