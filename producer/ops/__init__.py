"""Operating the fleet: requeue, recovery, in-flight checks, metrics, Flower, dead letters."""
