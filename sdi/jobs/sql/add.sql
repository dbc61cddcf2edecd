-- A new asynchronous process job, accepted (sdi.jobs.store.add)
INSERT INTO jobs.process_jobs (job_id, process_id, owner, inputs, requested_response, message,
                               progress)
VALUES (%(job_id)s, %(process_id)s, %(owner)s, %(inputs)s, %(requested_response)s,
        'Job accepted and ready for execution', 5)
