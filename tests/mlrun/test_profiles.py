"""Datastore profiles through the MLRun client: `register_datastore_profile` sends the secrets
once; `get`/`list_datastore_profiles` read the public part back, and no answer or log line
carries a secret; `delete_datastore_profile` removes it."""

import uuid

import harness


class Profiles(harness.ServerTestCase):
    def test_an_s3_profile_keeps_its_secrets_on_the_server(self):
        from mlrun.datastore.datastore_profile import DatastoreProfileS3

        nonce = uuid.uuid4().hex
        key_id, secret = f"AKID{nonce}", f"SECRET{nonce}"
        self.project.register_datastore_profile(
            DatastoreProfileS3(
                name="my-profile",
                bucket="vault",
                endpoint_url="http://127.0.0.1:9000",
                access_key_id=key_id,
                secret_key=secret,
            )
        )

        got = self.project.get_datastore_profile("my-profile")
        self.assertEqual((got.type, got.bucket), ("s3", "vault"))
        self.assertEqual(got.endpoint_url, "http://127.0.0.1:9000")
        self.assertIsNone(got.access_key_id)
        self.assertIsNone(got.secret_key)
        listed = self.project.list_datastore_profiles()
        self.assertEqual([p.name for p in listed], ["my-profile"])

        # The server keeps the secrets (baton's view names them) and never answers with them.
        answers = []
        for path in (
            "/api/v1/projects/my-project/datastore-profiles",
            "/api/v1/projects/my-project/datastore-profiles/my-profile",
            "/api/baton/v1/projects/my-project/datastore-profiles/my-profile",
        ):
            status, body = self.http("GET", path)
            self.assertEqual(status, 200, body)
            answers.append(str(body))
        self.assertEqual(body["secrets"], ["access_key_id", "secret_key"])
        for text in answers + [self.server_log()]:
            self.assertNotIn(secret, text)
            self.assertNotIn(key_id, text)

        self.project.delete_datastore_profile("my-profile")
        self.assertEqual(self.project.list_datastore_profiles(), [])
        with self.assertRaises(self.mlrun.errors.MLRunNotFoundError):
            self.project.get_datastore_profile("my-profile")
