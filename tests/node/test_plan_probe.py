def test_probe(planned):
    for k, p in planned.items():
        print(k, p.cloud, p.capacity, p.machine_type, len(p.script), {t: v for t, v in p.tags.items() if "job" in t}, list(p.objects)[:5])
