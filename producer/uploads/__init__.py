"""The upload side: presigned PUT and multipart requests, what the API accepts, bucket CORS."""
