"""OCI image layout directories on the client: the content store and index.json of one."""
