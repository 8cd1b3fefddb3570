/*
 * bench_grpc.cc: the echo through gRPC C++, synchronous unary calls over an insecure
 * channel (HTTP/2 + protobuf), the way most gRPC services are written. The server is the
 * stock synchronous server (its own thread pool); every client connection is its own
 * channel with a local subchannel pool, so 16 callers really are 16 TCP connections rather
 * than 16 streams multiplexed on one. Each call carries a 10 s deadline, as ms's calls do.
 *
 *   bench_grpc server --port-file F [--max-seconds S]
 *   bench_grpc client --target 127.0.0.1:PORT [--latency|--throughput] [bench options]
 */
#include "bench.h"
#include "echo.grpc.pb.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <unistd.h>

namespace
{

class EchoImpl final : public msbench::Echo::Service
{
    grpc::Status
    Echo(grpc::ServerContext *, const msbench::EchoMsg *req, msbench::EchoMsg *resp) override
    {
        resp->set_n(req->n());
        resp->set_s(req->s());
        return grpc::Status::OK;
    }
};

int
grpc_serve(const bench_server *s)
{
    EchoImpl service;
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(&service);
    std::unique_ptr<grpc::Server> server = b.BuildAndStart();
    if (!server || port <= 0) {
        std::fprintf(stderr, "bench_grpc: cannot start the server\n");
        return 1;
    }
    if (bench_write_port_file(s->port_file, port) != 0)
        return 1;
    server->Wait(); /* until SIGTERM or the lifetime alarm */
    return 0;
}

struct Conn {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<msbench::Echo::Stub> stub;
};

int echo_call(void *p, int64_t n, const char *s, char *err, size_t errlen);

void *
echo_open(const char *target, char *err, size_t errlen)
{
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1); /* a connection of its own */
    auto c = new Conn;
    c->channel = grpc::CreateCustomChannel(std::string("ipv4:") + target,
                                           grpc::InsecureChannelCredentials(), args);
    if (!c->channel->WaitForConnected(std::chrono::system_clock::now() +
                                      std::chrono::seconds(10))) {
        std::snprintf(err, errlen, "cannot connect to %s", target);
        delete c;
        return nullptr;
    }
    c->stub = msbench::Echo::NewStub(c->channel);
    char s[BENCH_STR_LEN + 1];
    bench_payload(0, s);
    if (echo_call(c, 0, s, err, errlen) != 0) {
        delete c;
        return nullptr;
    }
    return c;
}

int
echo_call(void *p, int64_t n, const char *s, char *err, size_t errlen)
{
    Conn *c = static_cast<Conn *>(p);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    msbench::EchoMsg req, resp;
    req.set_n(n);
    req.set_s(s, BENCH_STR_LEN);
    grpc::Status st = c->stub->Echo(&ctx, req, &resp);
    if (!st.ok()) {
        std::snprintf(err, errlen, "grpc: %d %s", static_cast<int>(st.error_code()),
                      st.error_message().c_str());
        return -1;
    }
    if (resp.n() != n || resp.s() != req.s()) {
        std::snprintf(err, errlen, "echo mismatch");
        return -1;
    }
    return 0;
}

void
echo_close(void *p)
{
    delete static_cast<Conn *>(p);
}

} // namespace

int
main(int argc, char **argv)
{
    static const bench_ops ops = {echo_open, echo_call, echo_close};
    bench_program prog{};
    prog.name = "bench_grpc";
    prog.label = "grpc";
    prog.ops = &ops;
    prog.serve = grpc_serve;
    prog.own_listener = 1; /* gRPC binds its own port */
    return bench_main(argc, argv, &prog);
}
