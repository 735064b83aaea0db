"""The task the RQ workers of redis_rq.py run: importable by name, as RQ requires."""


def double(x):
    return x * 2
