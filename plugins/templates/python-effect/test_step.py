import unittest
from types import SimpleNamespace

import step


class MemoryKv(dict):
    def set(self, key, value):
        self[key] = value

    def delete(self, key):
        return self.pop(key, None) is not None


class RecordTest(unittest.TestCase):
    def test_posts_once_per_idempotency_key(self):
        posts = []

        class Http:
            @staticmethod
            def post_json(url, value, headers):
                posts.append((url, value, headers))
                return 200, {"id": len(posts)}

        kv, ctx = MemoryKv(), SimpleNamespace(idempotency_key="run/step")
        data = {"url": "http://orders.test/", "order": {"sku": "A1"}}
        self.assertEqual(step.record(ctx, data, Http, kv), {"receipt": {"id": 1}, "replayed": False})
        self.assertEqual(step.record(ctx, data, Http, kv), {"receipt": {"id": 1}, "replayed": True})
        self.assertEqual(len(posts), 1)
        step.forget(ctx, kv)
        self.assertEqual(len(kv), 0)


if __name__ == "__main__":
    unittest.main()
