"""Static memory planning of a quantized graph: `memory_plan.plan_memory`."""
