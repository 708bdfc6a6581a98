import unittest
from types import SimpleNamespace

import step


class GreetTest(unittest.TestCase):
    def test_greets_by_name(self):
        self.assertEqual(step.greet(SimpleNamespace(attempt=1), {"name": "Ada"}), {"greeting": "Hello, Ada!"})

    def test_refuses_a_missing_name(self):
        with self.assertRaises(step.InvalidInput):
            step.greet(SimpleNamespace(attempt=1), {})


if __name__ == "__main__":
    unittest.main()
